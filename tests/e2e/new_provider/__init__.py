"""An invented host, `kestrel`, written the way README's "Adding a provider" says: its adapter, its simulator,
its contract test and its README row. tests/e2e/test_adding_a_provider.py puts them into a copy of the
repository and runs the suite there. Kestrel takes its key in `X-Api-Key`, signs its webhooks with HMAC,
renders a first frame only, 2-10 s, and has no prompt_extend switch.
"""
