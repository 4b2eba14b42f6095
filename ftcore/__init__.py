"""ftcore: the headless engine of the fine-tuning lab (d2l 13.2 fine-tuning, and past it).

One module per concept: data, models, devices, training, jobs, checkpoints, predict, charts; the CLI in cli;
the only Streamlit code in ui.
"""

__version__ = "0.1.0"
