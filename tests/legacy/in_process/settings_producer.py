""" A service written as for service_framework 0.0.12 whose `init_function` publishes the
first value of its `settings` state and then one delta """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def init_function(to_send, states, config):
    to_send('state', 'settings', {
        'mode': config['mode'], 'limits': {'EUR': 10}, 'current_num': 1, 'is_snapshot': True,
    })
    to_send('state', 'settings', {
        'limits': {'GBP': 20}, 'current_num': 2, 'is_snapshot': False,
    })
    LOG.info('settings: %s', dict(states['settings']))


state_models = {
    'out': {
        'settings': {
            'state_type': 'delta_update_out',
            'required_state_arguments': {
                'current_num': int,
                'is_snapshot': bool,
            },
            'required_arguments': {
                'mode': str,
                'limits': {str: int},
            },
        }
    }
}

config_model = {
    'required': {
        'mode': str,
    },
}
