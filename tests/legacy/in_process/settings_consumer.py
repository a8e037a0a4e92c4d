""" A service written as for service_framework 0.0.12 that follows the `settings` state;
its `init_function` notes what it held when it started """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()
AT_INIT = {}


def init_function(to_send, states, config):
    AT_INIT['settings'] = dict(states['settings'])
    LOG.info('settings at init: %s', AT_INIT['settings'])


state_models = {
    'in': {
        'settings': {
            'state_type': 'delta_update_in',
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
