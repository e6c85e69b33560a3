"""firmware_examples"""
