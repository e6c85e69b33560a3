"""SMS over SMPP 3.4: MT SMS from the API, MO SMS to integrations (docs/sms.md)."""
