"""The providers' HTTP APIs, faked: its own Django app (compare.simulator), mounted
at /sim/ when COMPARE_SIMULATOR is on and left out of INSTALLED_APPS otherwise."""
