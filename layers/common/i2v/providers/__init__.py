"""One module per host of the model, each declaring `PROVIDER` (see registry.py), and what they share:
base.py (the adapter's shape) and client.py (the HTTP engine). What an adapter must do:
docs/adapter-contract.md."""
