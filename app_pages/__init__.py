"""The dashboard's pages, one file each, listed in streamlit_app.py: widgets and layout only. A page reaches the
engine's runs through `app` (its tab's jobs and steering) and imports only the engine's public modules, which the
import-linter contracts in pyproject.toml name."""
