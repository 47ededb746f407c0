-- The product's draft schema as drizzle-kit wrote it for SQLite (dual-database-design.md
-- §9: uuids and uuid lists as text, lists as JSON text, jsonb as text, timestamps as
-- integer Unix milliseconds): the shape `migration adopt` recognises as "the draft" on
-- SQLite. Only the tables' columns and their types are compared: constraints and indexes
-- are rebuilt whatever they were.

CREATE TABLE `users` (
	`id` text PRIMARY KEY NOT NULL
);
--> statement-breakpoint
CREATE TABLE `projects` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`user_id` text NOT NULL,
	`created_at` integer DEFAULT (cast(strftime('%s','now') as integer) * 1000)
);
--> statement-breakpoint
CREATE TABLE `tasks` (
	`id` text PRIMARY KEY NOT NULL,
	`task_type` text NOT NULL,
	`params` text NOT NULL,
	`status` text,
	`dependant_on` text DEFAULT '[]',
	`output_location` text,
	`created_at` integer DEFAULT (cast(strftime('%s','now') as integer) * 1000),
	`updated_at` integer,
	`project_id` text,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `generations` (
	`id` text PRIMARY KEY NOT NULL,
	`tasks` text DEFAULT '[]',
	`location` text,
	`type` text,
	`created_at` integer DEFAULT (cast(strftime('%s','now') as integer) * 1000),
	`updated_at` integer,
	`project_id` text,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `shots` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` integer DEFAULT (cast(strftime('%s','now') as integer) * 1000),
	`updated_at` integer,
	`project_id` text,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `shot_generations` (
	`id` text PRIMARY KEY NOT NULL,
	`shot_id` text,
	`generation_id` text,
	`position` integer DEFAULT 0,
	FOREIGN KEY (`shot_id`) REFERENCES `shots`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`generation_id`) REFERENCES `generations`(`id`) ON UPDATE no action ON DELETE no action
);
