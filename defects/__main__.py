from defects.cli import main

main()
