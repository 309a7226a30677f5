# Placeholder replaced by the packaging work (install/export/config).
