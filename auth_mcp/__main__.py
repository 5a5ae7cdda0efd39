from auth_mcp.cli import main

main()
