from fraud_cli.main import cli

cli()
