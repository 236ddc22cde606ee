"""Reports: tables and plots of run and scale results, read through the results model."""
