"""Raw inputs in data/: the embedded default (real sample files from the ddeq wheel) and its checks."""
