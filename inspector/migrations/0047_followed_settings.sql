-- Version counters for the geofences, the endpoint states and the 1NCE OS settings, so every process (the workers of
-- one host, the gateways on one PostgreSQL) follows a change made through another one's API
-- (gateway/follow.py), as it already does for SIMs, PSKs, templates and integrations.
INSERT INTO meta (key, value) VALUES ('geofences_version', 0), ('endpoints_version', 0), ('os_settings_version', 0);
CREATE TRIGGER geofences_changed_insert AFTER INSERT ON geofences
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'geofences_version'; END;
CREATE TRIGGER geofences_changed_update AFTER UPDATE ON geofences
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'geofences_version'; END;
CREATE TRIGGER geofences_changed_delete AFTER DELETE ON geofences
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'geofences_version'; END;
CREATE TRIGGER endpoint_states_changed_insert AFTER INSERT ON endpoint_states
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'endpoints_version'; END;
CREATE TRIGGER endpoint_states_changed_update AFTER UPDATE ON endpoint_states
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'endpoints_version'; END;
CREATE TRIGGER endpoint_states_changed_delete AFTER DELETE ON endpoint_states
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'endpoints_version'; END;
CREATE TRIGGER os_settings_changed_insert AFTER INSERT ON os_settings
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'os_settings_version'; END;
CREATE TRIGGER os_settings_changed_update AFTER UPDATE ON os_settings
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'os_settings_version'; END;
CREATE TRIGGER os_settings_changed_delete AFTER DELETE ON os_settings
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'os_settings_version'; END;
