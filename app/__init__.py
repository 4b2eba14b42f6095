"""The dashboard's Streamlit glue: what the pages share and nothing they draw, one module per concern.

- `tab`: this browser tab's id, the registry that gives a refreshed tab its state back, and its data choice;
- `jobs`: this tab's run, series of runs and learning-rate finder, queued with the server's one backend;
- `cached`: engine calls cached for the server (summaries, pictures, models, evaluations, exports);
- `torch_facts`: what only torch can tell, asked of a child process while the server has not loaded it;
- `paths`: the path policy, which files and folders a user may type;
- `choices`: the options the pages offer and their labels;
- `widgets`: the widgets several pages draw.

`ftcore` imports none of this (tests/test_headless.py checks it), and the pages import nothing else of Streamlit's
state.
"""
