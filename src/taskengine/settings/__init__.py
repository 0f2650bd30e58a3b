"""How settings are loaded: the layers, `${…}` expansion, checks and error messages.

The settings model and `load_settings` live in `taskengine.config`; this package is the loader
behind them: `keys` (key paths, declared types, messages), `layers` (environment variables and
overrides, deep merge), `expand` (`${VAR}` and `${secret:name}`), `checks` (what types cannot
say) and `loader` (`Loader`, `fetch_secrets`).
"""
