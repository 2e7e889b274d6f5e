"""The tracking service: customers' look-ups, live updates and tracking page; operations' summary."""
