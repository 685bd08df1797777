"""What tests share that is not a fixture: the fault proxy in front of moto."""
