""" A replyer service written as for service_framework 0.0.12: it echoes each request """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()
REPLIES = {'count': 0}


def on_new_request(args, to_send, states, config):
    """
    Echoes the request back with the prefix of the config and a running count
    """
    REPLIES['count'] += 1
    LOG.info('Got request %s (reply number %s)', args['request_num'], REPLIES['count'])
    return {
        'echo': config['prefix'] + args['echo'],
        'request_num': args['request_num'],
        'reply_count': REPLIES['count'],
    }


def sigterm_handler(signum, frame, to_send, states, config):
    LOG.info('Replyer stopping after %s replies', REPLIES['count'])


connection_models = {
    'in': {
        'reply': {
            'connection_type': 'replyer',
            'required_creation_arguments': {
                'on_new_request': on_new_request,
            },
            'required_arguments': {
                'echo': str,
                'request_num': int,
            },
            'required_return_arguments': {
                'echo': str,
                'request_num': int,
                'reply_count': int,
            },
        }
    }
}

config_model = {
    'required': {
        'prefix': str,
    },
    'optional': {},
}
