-- The AuthZEN interop Todo scenario's users (github.com/openid/authzen,
-- interop/authzen-interop-website/docs/scenarios/todo-1.0-id): registered in pool `todo` under
-- the subject ids the interop clients send, their roles as groups, their e-mail addresses as
-- attributes (todos name their owner by e-mail address).
INSERT INTO principals (pool, subject, note) VALUES
    ('todo', 'CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'Rick Sanchez'),
    ('todo', 'CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'Morty Smith'),
    ('todo', 'CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'Summer Smith'),
    ('todo', 'CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'Beth Smith'),
    ('todo', 'CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'Jerry Smith');

INSERT INTO principal_groups (pool, subject, group_name) VALUES
    ('todo', 'CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'admin'),
    ('todo', 'CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'evil_genius'),
    ('todo', 'CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'editor'),
    ('todo', 'CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'editor'),
    ('todo', 'CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'viewer'),
    ('todo', 'CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'viewer');

INSERT INTO principal_attributes (pool, subject, name, value) VALUES
    ('todo', 'CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'email', 'rick@the-citadel.com'),
    ('todo', 'CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'email', 'morty@the-citadel.com'),
    ('todo', 'CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'email', 'summer@the-smiths.com'),
    ('todo', 'CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'email', 'beth@the-smiths.com'),
    ('todo', 'CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs', 'email', 'jerry@the-smiths.com');
