from condensation.cli import main

main()
