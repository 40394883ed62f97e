"""student stage."""
