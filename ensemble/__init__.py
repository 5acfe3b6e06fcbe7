"""The coordinator's side: split planning, scheduling on Ray, label routing, status."""
