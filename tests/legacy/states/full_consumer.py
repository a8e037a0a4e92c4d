""" A consumer of a full-update state, written as for service_framework 0.0.12.

It answers `check` with the number it holds, logs each new value it sees there, and logs
the value it converged to when it is stopped.
"""

import logging

from service_framework.utils.constants import PACKAGE_LOGGER_NAME

LOG = logging.getLogger(PACKAGE_LOGGER_NAME)
SEEN = {'num': None}


def on_check(args, to_send, states, config):
    num = states['num_state'].get('num', -1)
    if num != SEEN['num']:
        SEEN['num'] = num
        LOG.info('num_state is now %s', dict(states['num_state']))
    return {'num': num}


def sigterm_handler(signum, frame, to_send, states, config):
    value = states['num_state']
    LOG.info('num_state converged to num=%s text=%s', value.get('num'), value.get('text'))


state_models = {
    'in': {
        'num_state': {
            'state_type': 'full_update_in',
            'required_state_arguments': {
                'current_num': int,
                'is_snapshot': bool,
            },
            'required_arguments': {
                'num': int,
                'text': str,
            },
        }
    }
}

connection_models = {
    'in': {
        'check': {
            'connection_type': 'replyer',
            'required_creation_arguments': {
                'on_new_request': on_check,
            },
            'required_return_arguments': {
                'num': int,
            },
        }
    }
}
