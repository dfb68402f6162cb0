"""The target edge: batches of row operations, dead letters and checkpoints written to PostgreSQL.

The only package that writes the target; each commit holds whole source transactions and the
source's checkpoint.
"""
