"""Analysing: records to tables, statistics, figures and the computed verdict."""
