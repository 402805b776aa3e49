"""The ``robustreid`` command. Each sub-command lives in its own module and is imported only when used."""
