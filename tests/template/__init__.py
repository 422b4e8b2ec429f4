"""Offline checks of template.yaml: linters, security scan, our own rules, and a real `sam build`."""
