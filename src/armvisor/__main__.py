from armvisor.cli import main

main()
