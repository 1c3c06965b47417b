"""Training recipes: each module's ``get_config()`` returns a validated-ready ConfigDict."""
