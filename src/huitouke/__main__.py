from huitouke.cli.main import run

run()
