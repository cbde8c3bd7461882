from tootlake.cli import main

main()
