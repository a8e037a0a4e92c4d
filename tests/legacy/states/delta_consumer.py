""" A consumer of a delta-update state, written as for service_framework 0.0.12.

It answers `check` with the total and the number of keys it holds, and logs the value it
converged to when it is stopped.
"""

import logging

from service_framework.utils.constants import PACKAGE_LOGGER_NAME

LOG = logging.getLogger(PACKAGE_LOGGER_NAME)


def on_check(args, to_send, states, config):
    counts = states['counts']
    return {'total': counts.get('total', -1), 'seen_count': len(counts.get('seen', {}))}


def sigterm_handler(signum, frame, to_send, states, config):
    counts = states['counts']
    seen = counts.get('seen', {})
    LOG.info('counts converged to total=%s seen=%s', counts.get('total'),
             ','.join(f'{key}:{seen[key]}' for key in sorted(seen, key=int)))


state_models = {
    'in': {
        'counts': {
            'state_type': 'delta_update_in',
            'required_state_arguments': {
                'current_num': int,
                'is_snapshot': bool,
            },
            'required_arguments': {
                'total': int,
            },
            'optional_arguments': {
                'seen': {str: int},
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
                'total': int,
                'seen_count': int,
            },
        }
    }
}
