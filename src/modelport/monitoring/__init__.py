"""Layer 3: monitoring — drift, live accuracy, dashboard, alerts over the prediction log."""
