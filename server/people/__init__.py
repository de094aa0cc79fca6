"""People and their accounts: enrolment, roles and units, leases, workers, credentials, face
templates, bulk enrolment and move-out."""
