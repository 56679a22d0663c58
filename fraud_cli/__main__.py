from fraud_cli.entry import main

main()
