"""Evaluate detections against emission inventories: the paper's Table 2 and Fig. 10, plus precision, localisation
error and recall curves that the paper leaves out. The stage is :func:`no2hotspots.evaluate.run.run`."""
