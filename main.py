"""`uv run main.py [--transport streamable-http|sse] [--host HOST] [--port PORT]`."""

from auth_mcp.cli import main

if __name__ == "__main__":
    main()
