/*
 * sysvfill: SysV IPC objects of the caller's IPC namespace, made or shown.
 *
 *   sysvfill make   a segment (key 0x1234, 10000 bytes, a pattern, mode 0640, owner 1000:1001),
 *                   a queue (key 0x2345, "hello" type 1 and "world!" type 7, qbytes 4096) and a
 *                   set of 3 semaphores (key 0x3456, 5 6 7), in that order
 *   sysvfill show   one line per object: its id, key, mode, owner and contents
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct m {
	long mtype;
	char text[64];
};

static int make(void)
{
	int shm = shmget(0x1234, 10000, IPC_CREAT | 0640);
	unsigned char *p = shmat(shm, NULL, 0);
	if (shm < 0 || p == (void *)-1)
		return 1;
	for (int i = 0; i < 10000; i++)
		p[i] = (unsigned char)(i * 7 + 3);
	shmdt(p);
	struct shmid_ds sd;
	shmctl(shm, IPC_STAT, &sd);
	sd.shm_perm.uid = 1000;
	sd.shm_perm.gid = 1001;
	if (shmctl(shm, IPC_SET, &sd))
		return 1;
	int q = msgget(0x2345, IPC_CREAT | 0600);
	struct m a = { 1, "hello" }, b = { 7, "world!" };
	if (q < 0 || msgsnd(q, &a, 5, 0) || msgsnd(q, &b, 6, 0))
		return 1;
	struct msqid_ds qd;
	msgctl(q, IPC_STAT, &qd);
	qd.msg_qbytes = 4096;
	if (msgctl(q, IPC_SET, &qd))
		return 1;
	int s = semget(0x3456, 3, IPC_CREAT | 0666);
	unsigned short v[3] = { 5, 6, 7 };
	union semun u = { .array = v };
	if (s < 0 || semctl(s, 0, SETALL, u))
		return 1;
	return 0;
}

static int show(void)
{
	int shm = shmget(0x1234, 0, 0), q = msgget(0x2345, 0), s = semget(0x3456, 0, 0);
	if (shm < 0 || q < 0 || s < 0) {
		printf("missing shm=%d msg=%d sem=%d\n", shm, q, s);
		return 1;
	}
	struct shmid_ds sd;
	shmctl(shm, IPC_STAT, &sd);
	unsigned char *p = shmat(shm, NULL, SHM_RDONLY);
	unsigned long sum = 0;
	for (int i = 0; i < (int)sd.shm_segsz; i++)
		sum = sum * 31 + p[i];
	shmdt(p);
	printf("shm id=%d mode=%o owner=%d:%d size=%zu sum=%lu\n", shm, sd.shm_perm.mode & 0777, sd.shm_perm.uid, sd.shm_perm.gid,
	       sd.shm_segsz, sum);
	struct msqid_ds qd;
	msgctl(q, IPC_STAT, &qd);
	printf("msg id=%d mode=%o qbytes=%lu qnum=%lu", q, qd.msg_perm.mode & 0777, qd.msg_qbytes, qd.msg_qnum);
	for (unsigned long i = 0; i < qd.msg_qnum; i++) {
		struct m x = { 0 };
		long n = msgrcv(q, &x, sizeof(x.text), i, IPC_NOWAIT | 040000 /* MSG_COPY */);
		printf(" %ld:%.*s", x.mtype, (int)n, x.text);
	}
	printf("\n");
	struct semid_ds ss;
	union semun u = { .buf = &ss };
	semctl(s, 0, IPC_STAT, u);
	unsigned short v[3];
	u.array = v;
	semctl(s, 0, GETALL, u);
	printf("sem id=%d mode=%o nsems=%lu values=%u,%u,%u\n", s, ss.sem_perm.mode & 0777, ss.sem_nsems, v[0], v[1], v[2]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "make"))
		return make();
	return show();
}
