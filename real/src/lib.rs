//! harrow's production backend: the model's protocol and driver over Linux processes.
