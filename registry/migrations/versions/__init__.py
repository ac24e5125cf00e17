"""Alembic revision files, loaded by Alembic by path (this file makes setuptools ship them)."""
