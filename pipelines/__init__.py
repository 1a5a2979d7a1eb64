"""Pipeline wiring only: no logic lives here."""
