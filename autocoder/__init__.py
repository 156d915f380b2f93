"""autocoder: assign official occupation codes (O*NET-SOC 2019, ISCO-08/ESCO) to job records."""

__version__ = "0.1.0"
