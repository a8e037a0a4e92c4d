""" A main-mode publisher written as for service_framework 0.0.12: it publishes into an
XPUB/XSUB bus (is_x_pub), waiting up to `wait_after_creation_s` for its subscriber """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def main(to_send, config):
    """
    Publishes `num_messages` messages into the bus.
    """
    for msg_num in range(config['num_messages']):
        payload = {'msg_num': msg_num, 'text': f'message {msg_num}'}
        LOG.info('Publishing: %s', payload)
        to_send('connection', 'publisher', payload)
    print(f"published {config['num_messages']} messages", flush=True)


connection_models = {
    'out': {
        'publisher': {
            'connection_type': 'publisher',
            'required_creation_arguments': {
                'is_x_pub': True,
                'wait_after_creation_s': 10.0,
                'min_subscribers': 1,
            },
            'required_arguments': {
                'msg_num': int,
                'text': str,
            },
        }
    }
}

config_model = {
    'required': {
        'num_messages': int,
    },
}
