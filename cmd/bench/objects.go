package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/autograph/pgbackup/store"
)

func newMinIO(env benchEnv) (*minio.Client, error) {
	return store.NewMinIOClient(store.MinIOConfig{Endpoint: env.MinIOEndpoint, AccessKey: env.MinIOUser, SecretKey: env.MinIOPassword})
}

// runTransfer is the child mode that does the old way's upload (put) or
// download (get) of one file with minio-go's defaults, as a script built on
// FPutObject/FGetObject would.
func runTransfer(ctx context.Context, mode string, args []string) error {
	fs := flag.NewFlagSet("bench "+mode, flag.ContinueOnError)
	bucket := fs.String("bucket", "", "bucket")
	key := fs.String("key", "", "object key")
	file := fs.String("file", "", "local file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bucket == "" || *key == "" || *file == "" {
		return fmt.Errorf("%s: -bucket, -key and -file are required", mode)
	}
	env, err := loadEnv()
	if err != nil {
		return err
	}
	c, err := newMinIO(env)
	if err != nil {
		return err
	}
	if mode == "put" {
		_, err = c.FPutObject(ctx, *bucket, *key, *file, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	} else {
		err = c.FGetObject(ctx, *bucket, *key, *file, minio.GetObjectOptions{})
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", mode, *bucket, *key, err)
	}
	return nil
}

// removeBucket deletes every object and unfinished upload in bucket, then
// the bucket. It runs at the end of the benchmark even after a failure or an
// interrupt, hence its own context.
func removeBucket(c *minio.Client, bucket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			errs = append(errs, u.Err)
			break
		}
		if err := c.RemoveIncompleteUpload(ctx, bucket, u.Key); err != nil {
			errs = append(errs, err)
		}
	}
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			errs = append(errs, o.Err)
			break
		}
		if err := c.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.RemoveBucket(ctx, bucket); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove bucket %s: %w", bucket, err)
	}
	return nil
}
