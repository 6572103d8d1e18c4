"""bms/emulator"""
