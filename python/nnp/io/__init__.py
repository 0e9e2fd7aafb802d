"""Files: the potential file, configuration files, atomic writes."""
