"""Notifier: the smart loops. Alerts staff about detractors and passives; asks promoters
for reviews."""
