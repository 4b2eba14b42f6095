"""The dashboard's Streamlit glue: session state, cached wrappers around ftcore, and widgets the pages share.

`ftcore` stays headless (no Streamlit); the pages under app_pages/ and streamlit_app.py lay out what this package
and ftcore return.
"""
