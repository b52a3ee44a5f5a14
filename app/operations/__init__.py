"""Running medcite in a hospital: metrics, quality alarms, feedback and review
(README, "Operations")."""
