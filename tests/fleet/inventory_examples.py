"""The first example of Ansible's inventory guide, in both formats: read by the inventory's own tests and held to
ansible-core's answers by tests/test_inventory_vs_ansible.py."""

BASIC_INI = """\
mail.example.com

[webservers]
foo.example.com
bar.example.com

[dbservers]
one.example.com
two.example.com
three.example.com
"""

BASIC_YAML = """\
all:
  hosts:
    mail.example.com:
  children:
    webservers:
      hosts:
        foo.example.com:
        bar.example.com:
    dbservers:
      hosts:
        one.example.com:
        two.example.com:
        three.example.com:
"""
