-- The stack's databases on one PostgreSQL: touchwave's store and Airflow's metadata.
-- (Temporal's auto-setup creates its own two, temporal and temporal_visibility.)
CREATE DATABASE touchwave;
CREATE DATABASE airflow;
