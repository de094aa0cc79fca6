"""People and their accounts: enrolment, roles and units, leases, workers, credentials, face
templates and the in-memory galleries kept in step with them, move-out."""
