"""The book's comparisons and the yardstick they are measured against: the book's own loop, transcribed
(`reference`), fine-tune vs scratch and the learning-rate sweep as series of configs (`experiments`), the lesson
in a minute (`lesson`), and the `bench` command that times the book's loop against ftcore's."""
