"""Script tasks (shell, python) and the runners that run them (Process, Docker)."""
